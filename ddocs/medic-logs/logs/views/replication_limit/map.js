function (doc) {
  /* Users whose last replication went over the 10,000 documents CHT recommends. */
  if (doc._id.indexOf('replication-count-') === 0 && typeof doc.count === 'number' && doc.count > 10000) {
    emit(doc.user, doc.count);
  }
}
