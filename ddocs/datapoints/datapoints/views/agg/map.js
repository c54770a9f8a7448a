function (doc) {
  // A bucket holds the stored values of up to 32 sibling regions for one
  // campaign: values[region][indicator] = number. Rows are keyed
  // [region, campaign, depth of the stored values, indicator block]:
  // one "self" row per child (its own stored values) and, for each ancestor
  // on the bucket's path, one row with the bucket's sum. So the total of a
  // region over its sub-regions at depth d is one reduced key, and a query
  // reads one row per bucket, not one per datapoint.
  if (doc.kind !== 'datapoint_bucket' || !doc.values || !doc.path || typeof doc.campaign_id !== 'number') {
    return;
  }
  var depth = doc.path.length;
  var sums = {};
  var region, values, key, value, block, own, b;
  for (region in doc.values) {
    values = doc.values[region];
    own = {};
    for (key in values) {
      value = values[key];
      if (typeof value !== 'number') {
        continue;
      }
      block = Math.floor(Number(key) / 64);
      if (!own[block]) {
        own[block] = {};
      }
      own[block][key] = value;
      if (!sums[block]) {
        sums[block] = {};
      }
      sums[block][key] = (sums[block][key] || 0) + value;
    }
    for (b in own) {
      emit([Number(region), doc.campaign_id, depth, Number(b)], own[b]);
    }
  }
  for (var i = 0; i < doc.path.length; i++) {
    for (b in sums) {
      emit([doc.path[i], doc.campaign_id, depth, Number(b)], sums[b]);
    }
  }
}
