function (doc) {
  if (doc.type !== 'data_record' || !doc.form) {
    return;
  }
  var skip = ['_id', '_rev', 'type', 'refid', 'content'];
  var used = {};
  var add = function (word) {
    if (word.length > 2 && !used[word]) {
      used[word] = true;
      emit([word], doc.reported_date);
    }
  };
  var index = function (object) {
    Object.keys(object).forEach(function (key) {
      var value = object[key];
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
  };
  index(doc);
  if (doc.fields && typeof doc.fields === 'object') {
    index(doc.fields);
  }
  if (doc.contact && doc.contact._id) {
    add('contact:' + String(doc.contact._id).toLowerCase());
  }
}
