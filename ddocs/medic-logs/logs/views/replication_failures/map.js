function (doc) {
  /* CHT's logs/replication_failures: [day, user] -> that day's count, from the replication-fail- docs. */
  if (doc._id.indexOf('replication-fail-') === 0 && doc.daily_failures) {
    Object.keys(doc.daily_failures).forEach(function (day) {
      emit([day, doc.user], doc.daily_failures[day]);
    });
  }
}
