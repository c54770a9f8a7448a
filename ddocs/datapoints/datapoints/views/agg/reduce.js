function (keys, values, rereduce) {
  // Sums objects key by key ({indicator: value}); a key present in any input
  // is present in the output, so "has data" survives a zero sum. Outputs stay
  // small: one indicator block is at most 64 keys.
  var out = {};
  for (var i = 0; i < values.length; i++) {
    var v = values[i];
    for (var k in v) {
      out[k] = (out[k] || 0) + v[k];
    }
  }
  return out;
}
