function (doc) {
  // [contact type, _id]: every key unique, so pages can start after the last key seen
  // (CouchDB's startkey_docid would do on contacts_by_type, but pouchdb-server ignores it)
  var classic = ['district_hospital', 'health_center', 'clinic', 'person'];
  if (doc.type === 'contact' && doc.contact_type) {
    emit([doc.contact_type, doc._id]);
  } else if (classic.indexOf(doc.type) !== -1) {
    emit([doc.type, doc._id]);
  }
}
