function (doc) {
  if (doc.kind === 'region' && typeof doc.depth === 'number') {
    emit(doc.depth, null);
  }
}
