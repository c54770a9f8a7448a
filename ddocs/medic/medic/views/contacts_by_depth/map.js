function (doc) {
  // for each ancestor (and the contact itself, depth 0): [ancestor] and [ancestor, depth];
  // value, as cht-core's: the contact's short id (reports may name it instead of its _id) and
  // the id of its primary contact (replicate_primary_contacts sends it with the place)
  var types = ['contact', 'person', 'clinic', 'health_center', 'district_hospital'];
  if (types.indexOf(doc.type) === -1) {
    return;
  }
  var contact = doc.contact;
  var value = {
    shortcode: doc.patient_id || doc.place_id,
    primary_contact: contact && typeof contact === 'object' ? contact._id : contact
  };
  var node = doc;
  var depth = 0;
  while (node && depth < 64) {
    if (node._id) {
      emit([node._id], value);
      emit([node._id, depth], value);
    }
    depth++;
    node = node.parent;
  }
}
