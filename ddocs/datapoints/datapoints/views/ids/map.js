function (doc) {
  // Every integer id ever given out, live records and reservations alike, so
  // the next id is one more than the last row of a kind (ids are never reused).
  var kind = doc.kind || doc.reserves;
  if (typeof kind === 'string' && typeof doc.id === 'number') {
    emit([kind, doc.id], null);
  }
}
