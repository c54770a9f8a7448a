function (doc) {
  var i;
  if (doc.doc_type === 'spatial_unit' && doc.relationships) {
    for (i = 0; i < doc.relationships.length; i++) {
      emit([doc.project, doc.relationships[i]], null);
    }
  }
}
