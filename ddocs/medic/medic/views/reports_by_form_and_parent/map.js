function (doc) {
  /* Reports by [form, the sender's place]: the reminders job skips places that sent the form recently. */
  if (doc.type !== 'data_record' || !doc.form) {
    return;
  }
  var place = doc.contact && doc.contact.parent && doc.contact.parent._id;
  if (place) {
    emit([doc.form, place], doc.reported_date);
  }
}
