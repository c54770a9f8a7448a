function (doc) {
  // Cases by [country, geohash of 9 characters], value [lon, lat]: the recount
  // reads a country's points, or those in a few cells, from here.
  // Keep in step with api/foci/geometry.py (point_cell).
  var BASE32 = '0123456789bcdefghjkmnpqrstuvwxyz';
  function index(value, low, high, bits) {
    var i = 0, mid, k;
    for (k = 0; k < bits; k++) {
      mid = (low + high) / 2;
      if (value >= mid) { i = i * 2 + 1; low = mid; } else { i = i * 2; high = mid; }
    }
    return i;
  }
  function cellName(i, j, level) {
    var total = 5 * level, lonBits = Math.ceil(total / 2), latBits = Math.floor(total / 2);
    var out = '', value = 0, count = 0, li = lonBits - 1, ai = latBits - 1, bit, k;
    for (k = 0; k < total; k++) {
      if (k % 2 === 0) { bit = Math.floor(i / Math.pow(2, li)) % 2; li--; }
      else { bit = Math.floor(j / Math.pow(2, ai)) % 2; ai--; }
      value = value * 2 + bit;
      count++;
      if (count === 5) { out += BASE32.charAt(value); value = 0; count = 0; }
    }
    return out;
  }
  function pointCell(lon, lat, level) {
    var total = 5 * level;
    return cellName(index(lon, -180, 180, Math.ceil(total / 2)), index(lat, -90, 90, Math.floor(total / 2)), level);
  }
  if (doc.type !== 'foci_case' || typeof doc.country !== 'string' || !doc.geometry ||
      doc.geometry.type !== 'Point' || !doc.geometry.coordinates) {
    return;
  }
  var lon = doc.geometry.coordinates[0], lat = doc.geometry.coordinates[1];
  if (typeof lon !== 'number' || typeof lat !== 'number' || lon < -180 || lon > 180 || lat < -90 || lat > 90) {
    return;
  }
  emit([doc.country, pointCell(lon, lat, 9)], [lon, lat]);
}
