function (doc) {
  /* Reports by [place, reported_date] for the submitter and every place above them (the report's own copy of
     its contact's lineage), so "reports from this place and everything below it" is one key range. */
  if (doc.type !== 'data_record' || !doc.form) {
    return;
  }
  var node = doc.contact;
  var guard = 0;
  while (node && guard < 64) {
    if (node._id) {
      emit([node._id, doc.reported_date], null);
    }
    node = node.parent;
    guard++;
  }
}
