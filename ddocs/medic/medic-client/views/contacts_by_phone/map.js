function (doc) {
  // key: the number with punctuation and spaces removed ('+' kept when it leads), so one
  // number written in different ways meets under the forms the API asks for
  var classic = ['district_hospital', 'health_center', 'clinic', 'person'];
  if (doc.type !== 'contact' && classic.indexOf(doc.type) === -1) {
    return;
  }
  var seen = {};
  var add = function (phone) {
    if (typeof phone !== 'string' && typeof phone !== 'number') {
      return;
    }
    phone = String(phone).replace(/^\s+/, '');
    var key = (phone.charAt(0) === '+' ? '+' : '') + phone.replace(/\D/g, '');
    if (key.replace('+', '').length > 2 && !seen[key]) {
      seen[key] = true;
      emit(key, null);
    }
  };
  add(doc.phone);
  add(doc.phone_alternate);
}
