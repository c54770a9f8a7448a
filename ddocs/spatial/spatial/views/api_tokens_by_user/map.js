function (doc) {
  if (doc.doc_type === 'api_token') {
    emit([doc.user, doc.created], {id: doc.id, name: doc.name, created: doc.created});
  }
}
