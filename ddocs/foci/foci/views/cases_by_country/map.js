function (doc) {
  if (doc.type === 'foci_case' && typeof doc.country === 'string' && typeof doc.id === 'string') {
    emit([doc.country, doc.id], null);
  }
}
