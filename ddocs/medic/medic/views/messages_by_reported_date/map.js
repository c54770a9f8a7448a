function (doc) {
  /* One row per doc that holds messages (outgoing tasks, scheduled tasks, automatic replies, or an incoming
     SMS), by [reported_date]: the messages export reads them in date order. */
  var has = function (list) {
    return list && list.length > 0;
  };
  if (has(doc.tasks) || has(doc.scheduled_tasks) || has(doc.responses) ||
      (doc.sms_message && doc.sms_message.message)) {
    emit([doc.reported_date], null);
  }
}
