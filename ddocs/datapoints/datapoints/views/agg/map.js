function (doc) {
  // A bucket holds the stored values of one campaign for the regions of one
  // block of 64 region ids: values[region][indicator] = number, with each
  // region's path (its ancestors, itself last). Rows are keyed
  // [region, campaign, block of 64 indicator ids]: one row per region with
  // its own values, and one row per ancestor with the bucket's values below
  // it. Each value is [shallowest depth, sum at that depth, deepest depth,
  // sum at every depth], so one reduced key gives a region's stored value
  // (shallowest depth = its own) and its total below when all values below
  // sit at one depth. Regions made together get neighbouring ids, so a
  // subtree spans few buckets and a query reads few rows.
  if (doc.kind !== 'datapoint_bucket' || !doc.values || !doc.paths || typeof doc.campaign_id !== 'number') {
    return;
  }
  var above = {};
  var region, path, depth, own, key, value, block, i, ancestor, blocks, acc, seen, b;
  for (region in doc.values) {
    path = doc.paths[region];
    if (!path || !path.length) {
      continue;
    }
    depth = path.length - 1;
    own = {};
    for (key in doc.values[region]) {
      value = doc.values[region][key];
      if (typeof value !== 'number') {
        continue;
      }
      block = Math.floor(Number(key) / 64);
      if (!own[block]) {
        own[block] = {};
      }
      own[block][key] = [depth, value, depth, value];
      for (i = 0; i < path.length - 1; i++) {
        ancestor = path[i];
        blocks = above[ancestor] || (above[ancestor] = {});
        acc = blocks[block] || (blocks[block] = {});
        seen = acc[key];
        if (!seen) {
          acc[key] = [depth, value, depth, value];
          continue;
        }
        if (depth < seen[0]) {
          seen[0] = depth;
          seen[1] = value;
        } else if (depth === seen[0]) {
          seen[1] += value;
        }
        if (depth > seen[2]) {
          seen[2] = depth;
        }
        seen[3] += value;
      }
    }
    for (b in own) {
      emit([Number(region), doc.campaign_id, Number(b)], own[b]);
    }
  }
  for (ancestor in above) {
    for (b in above[ancestor]) {
      emit([Number(ancestor), doc.campaign_id, Number(b)], above[ancestor][b]);
    }
  }
}
