function (doc) {
  /* CHT telemetry docs (one per user, device and day) by [user, deviceId, YYYY-MM-DD]: the last row of each
     [user, deviceId] is that device's latest entry, read in one pass without a reduce. */
  var meta = doc.metadata;
  if (doc.type !== 'telemetry' || !meta || !meta.user || !meta.deviceId || !meta.year || !meta.month ||
      !meta.day) {
    return;
  }
  var pad = function (n) {
    n = String(n);
    return n.length < 2 ? '0' + n : n;
  };
  var device = doc.device || {};
  var info = device.deviceInfo || {};
  var versions = meta.versions || {};
  emit([String(meta.user), String(meta.deviceId), meta.year + '-' + pad(meta.month) + '-' + pad(meta.day)], {
    userAgent: device.userAgent || null,
    apk: (info.app && info.app.version) || null,
    android: (info.software && info.software.androidVersion) || null,
    cht: versions.app || null,
    settings: versions.settings || null,
    storage: info.storage ? { free: info.storage.free, total: info.storage.total } : null
  });
}
