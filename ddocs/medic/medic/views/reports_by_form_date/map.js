function (doc) {
  /* Reports by [form, reported_date]: an export of some forms over some dates reads exactly its rows, in date
     order, and pages by key (reports_by_form's one key per form would page by skip). */
  if (doc.type === 'data_record' && doc.form) {
    emit([doc.form, doc.reported_date], null);
  }
}
