function (doc) {
  var levels = ['district_hospital', 'health_center', 'clinic', 'person'];
  var type = doc.type === 'contact' ? doc.contact_type : doc.type;
  var level = doc.type === 'contact' ? levels.indexOf(type) : levels.indexOf(doc.type);
  if (doc.type === 'contact' && level === -1) {
    level = type;
  }
  if (!type || level === -1) {
    return;
  }
  var skip = ['_id', '_rev', 'type', 'refid', 'geolocation'];
  var name = typeof doc.name === 'string' ? doc.name.toLowerCase() : doc.name;
  var order = !!doc.date_of_death + ' ' + !!doc.muted + ' ' + level + ' ' + name;
  var used = {};
  var add = function (word) {
    if (word.length > 2 && !used[word]) {
      used[word] = true;
      emit([word], order);
    }
  };
  Object.keys(doc).forEach(function (key) {
    var value = doc[key];
    var lower = key.toLowerCase();
    if (!value || skip.indexOf(lower) !== -1 || /_date$/.test(lower)) {
      return;
    }
    if (typeof value === 'string') {
      value.toLowerCase().split(/\s+/).forEach(add);
    }
    if (typeof value === 'string' || typeof value === 'number') {
      add(lower + ':' + String(value).toLowerCase());
    }
  });
  add(type);
}
