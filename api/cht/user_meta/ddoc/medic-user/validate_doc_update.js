function (newDoc) {
  // a device marks what it purged with deletions carrying purged: true; they never belong on the server
  if (newDoc && newDoc._deleted && newDoc.purged) {
    throw({ forbidden: 'Purged documents should not be written to CouchDB!' });
  }
}
