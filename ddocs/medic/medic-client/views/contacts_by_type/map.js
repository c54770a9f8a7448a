function (doc) {
  // key [contact type]; value sorts dead, muted, hierarchy level and name as CHT's lists do
  var levels = ['district_hospital', 'health_center', 'clinic', 'person'];
  var type = doc.type === 'contact' ? doc.contact_type : doc.type;
  var level = doc.type === 'contact' ? levels.indexOf(type) : levels.indexOf(doc.type);
  if (doc.type === 'contact' && level === -1) {
    level = type;
  }
  if (!type || level === -1) {
    return;
  }
  var name = typeof doc.name === 'string' ? doc.name.toLowerCase() : doc.name;
  emit([type], !!doc.date_of_death + ' ' + !!doc.muted + ' ' + level + ' ' + name);
}
