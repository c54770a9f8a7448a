function (doc) {
  // Every region with values in a bucket, and every ancestor of one, once:
  // the buckets holding values at or below a region (to move or delete it).
  if (doc.kind !== 'datapoint_bucket' || !doc.values || !doc.paths) {
    return;
  }
  var seen = {};
  var region, path, i;
  for (region in doc.values) {
    path = doc.paths[region];
    if (!path || !path.length) {
      continue;
    }
    for (i = 0; i < path.length; i++) {
      if (!seen[path[i]]) {
        seen[path[i]] = true;
        emit(Number(path[i]), null);
      }
    }
  }
}
