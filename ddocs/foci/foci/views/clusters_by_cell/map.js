function (doc) {
  // Clusters by [country, geohash cell] for each of the (at most 4) cells of the
  // finest level up to 8 that cover the cluster's bounding box ('' when none do):
  // the clusters holding a point are found under the point's cell prefixes.
  // Keep in step with api/foci/geometry.py (covering_cells).
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
  function coveringCells(minLon, minLat, maxLon, maxLat) {
    var best = [''], level, total, lonBits, latBits, i0, j0, i1, j1, i, j, cells;
    for (level = 1; level <= 8; level++) {
      total = 5 * level;
      lonBits = Math.ceil(total / 2);
      latBits = Math.floor(total / 2);
      i0 = index(minLon, -180, 180, lonBits);
      j0 = index(minLat, -90, 90, latBits);
      i1 = index(maxLon, -180, 180, lonBits);
      j1 = index(maxLat, -90, 90, latBits);
      if ((i1 - i0 + 1) * (j1 - j0 + 1) > 4) {
        break;
      }
      cells = [];
      for (i = i0; i <= i1; i++) {
        for (j = j0; j <= j1; j++) {
          cells.push(cellName(i, j, level));
        }
      }
      best = cells;
    }
    return best;
  }
  if (doc.type !== 'foci_cluster' || typeof doc.country !== 'string' || !doc.geometry) {
    return;
  }
  var polygons = doc.geometry.type === 'Polygon' ? [doc.geometry.coordinates] :
    doc.geometry.type === 'MultiPolygon' ? doc.geometry.coordinates : [];
  var minLon = 181, minLat = 91, maxLon = -181, maxLat = -91, p, r, q, ring, pos;
  for (p = 0; p < (polygons || []).length; p++) {
    for (r = 0; polygons[p] && r < polygons[p].length; r++) {
      ring = polygons[p][r] || [];
      for (q = 0; q < ring.length; q++) {
        pos = ring[q];
        if (pos && typeof pos[0] === 'number' && typeof pos[1] === 'number') {
          if (pos[0] < minLon) { minLon = pos[0]; }
          if (pos[0] > maxLon) { maxLon = pos[0]; }
          if (pos[1] < minLat) { minLat = pos[1]; }
          if (pos[1] > maxLat) { maxLat = pos[1]; }
        }
      }
    }
  }
  if (minLon > maxLon || minLat > maxLat) {
    return;
  }
  var cells = coveringCells(minLon, minLat, maxLon, maxLat), c;
  for (c = 0; c < cells.length; c++) {
    emit([doc.country, cells[c]], null);
  }
}
