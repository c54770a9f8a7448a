function (keys, values, rereduce) {
  // Merges {indicator: [shallowest depth, sum there, deepest depth, total]}.
  // An indicator present in any input is present in the output, so "has
  // data" survives a zero sum. One block is at most 64 indicators, which
  // keeps outputs well under CouchDB's reduce_limit.
  var out = {};
  for (var i = 0; i < values.length; i++) {
    var v = values[i];
    for (var k in v) {
      var x = v[k];
      var o = out[k];
      if (!o) {
        out[k] = [x[0], x[1], x[2], x[3]];
        continue;
      }
      if (x[0] < o[0]) {
        o[0] = x[0];
        o[1] = x[1];
      } else if (x[0] === o[0]) {
        o[1] += x[1];
      }
      if (x[2] > o[2]) {
        o[2] = x[2];
      }
      o[3] += x[3];
    }
  }
  return out;
}
