function (doc) {
  // as CHT's: reports (data_record with a form) by form; incoming messages without a form are not listed
  if (doc.type === 'data_record' && doc.form) {
    emit([doc.form], doc.reported_date);
  }
}
