function (doc) {
  var classic = ['district_hospital', 'health_center', 'clinic', 'person'];
  if (doc.type !== 'contact' && classic.indexOf(doc.type) === -1) {
    return;
  }
  var type = doc.type === 'contact' ? doc.contact_type : doc.type;
  if (doc.parent && doc.parent._id) {
    emit([doc.parent._id, type]);
  }
}
