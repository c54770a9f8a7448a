function (doc) {
  if (doc.doc_type === 'spatial_unit') {
    emit([doc.project, doc.name.toLowerCase(), doc.unit_id], null);
  }
}
