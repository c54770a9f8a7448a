function (doc) {
  // [ancestor, office] for every region: the offices of a subtree are read by
  // skipping from one office to the next, a few single-row queries.
  if (doc.kind === 'region' && doc.path && typeof doc.office_id === 'number') {
    for (var i = 0; i < doc.path.length; i++) {
      emit([doc.path[i], doc.office_id], null);
    }
  }
}
