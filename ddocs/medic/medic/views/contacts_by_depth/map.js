function (doc) {
  // for each ancestor (and the contact itself, depth 0): [ancestor] and [ancestor, depth];
  // value: the contact's short id, which reports may name instead of its _id
  var types = ['contact', 'person', 'clinic', 'health_center', 'district_hospital'];
  if (types.indexOf(doc.type) === -1) {
    return;
  }
  var value = doc.patient_id || doc.place_id || null;
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
