function (doc) {
  // A bucket holds the stored values of one campaign for the regions of one
  // block of 64 region ids: values[region][indicator] = number, with each
  // region's path (its ancestors, itself last). Rows are keyed
  // [campaign, depth of the region, region, block of 16 indicator ids] and
  // reduced by CouchDB's built-in _sum (arrays are summed element by element),
  // so the reductions live in the index: the values of many regions of one
  // depth (the districts of a country, the children of a region) are read
  // with one group=true range query, without any JavaScript at query time.
  // Indicator i takes the six numbers from 6 * (i % 16): a value counts there
  // at its own region as [1, value, 0, 0, 0, 0] and at each ancestor as
  // [0, 0, 1, value, depth, depth * depth] (summed within the bucket first).
  // So a reduced row says whether the region stores a value and which, and
  // how many values lie below, their total, and whether they all sit at one
  // depth (count * sum of squares = square of the sum of depths).
  if (doc.kind !== 'datapoint_bucket' || !doc.values || !doc.paths || typeof doc.campaign_id !== 'number') {
    return;
  }
  var rows = {};
  function row(depth, region, indicator) {
    // The numbers of (region, block of the indicator), long enough to hold the indicator's six.
    var block = Math.floor(indicator / 16);
    var id = region + ':' + block;
    var found = rows[id] || (rows[id] = {key: [doc.campaign_id, depth, region, block], value: []});
    while (found.value.length < 6 * (indicator % 16) + 6) {
      found.value.push(0);
    }
    return found.value;
  }
  var region, path, depth, key, indicator, value, i, at, numbers;
  for (region in doc.values) {
    path = doc.paths[region];
    if (!path || !path.length) {
      continue;
    }
    depth = path.length - 1;
    for (key in doc.values[region]) {
      value = doc.values[region][key];
      indicator = Number(key);
      if (typeof value !== 'number' || indicator < 0 || indicator % 1 !== 0) {
        continue;
      }
      at = 6 * (indicator % 16);
      numbers = row(depth, Number(region), indicator);
      numbers[at] += 1;
      numbers[at + 1] += value;
      for (i = 0; i < path.length - 1; i++) {
        numbers = row(i, Number(path[i]), indicator);
        numbers[at + 2] += 1;
        numbers[at + 3] += value;
        numbers[at + 4] += depth;
        numbers[at + 5] += depth * depth;
      }
    }
  }
  for (key in rows) {
    emit(rows[key].key, rows[key].value);
  }
}
