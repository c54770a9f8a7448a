function (doc) {
  // key: the primary contact a contact names (its `contact`, an id or a stub with one), as cht-core's
  var types = ['contact', 'person', 'clinic', 'health_center', 'district_hospital'];
  if (types.indexOf(doc.type) === -1 || !doc.contact) {
    return;
  }
  var primary = typeof doc.contact === 'object' ? doc.contact._id : doc.contact;
  if (primary) {
    emit(primary);
  }
}
