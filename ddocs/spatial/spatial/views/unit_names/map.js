function (doc) {
  if (doc.doc_type === 'spatial_unit') {
    emit([doc.project, doc.unit_id], doc.name);
  }
}
