function (doc) {
  if (doc.type === 'connected-user' && typeof doc.timestamp === 'number') {
    emit(doc.timestamp, doc.user);
  }
}
