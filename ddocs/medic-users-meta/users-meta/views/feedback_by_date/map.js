function (doc) {
  if (doc.type === 'feedback') {
    emit(doc.meta && doc.meta.time ? doc.meta.time : null);
  }
}
