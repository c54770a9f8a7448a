function (newDoc, oldDoc, userCtx) {
  /*
   * Defence in depth: the API is the gatekeeper (api/cht/replication/write_rules.py holds the
   * same rules, cht-core's, and a test keeps the two in step), but a write that reaches
   * CouchDB directly from a non-admin is refused here too.
   */
  if (newDoc.purged) {
    throw({ forbidden: 'Purged documents should not be written to CouchDB!' });
  }
  var roles = userCtx.roles || [];
  if (roles.indexOf('_admin') !== -1 || roles.indexOf('admin') !== -1) {
    return;
  }
  var id = newDoc._id || '';
  var docs = [newDoc, oldDoc];
  var configIds = ['settings', 'resources', 'branding', 'partners', 'privacy-policies',
                   'service-worker-meta', 'zscore-charts', 'extension-libs', 'migration-log'];
  var configTypes = ['form', 'translations', 'token_login', 'ui-extension'];
  var isType = function (types) {
    for (var i = 0; i < docs.length; i++) {
      if (docs[i] && types.indexOf(docs[i].type) !== -1) {
        return true;
      }
    }
    return false;
  };
  if (id.indexOf('_design/') === 0 || configIds.indexOf(id) !== -1 || id.indexOf('messages-') === 0 ||
      isType(configTypes)) {
    throw({ forbidden: 'You are not authorized to edit admin only docs' });
  }
  var prefix = 'org.couchdb.user:';
  if (id.indexOf(prefix) !== 0 && !isType(['user-settings'])) {
    return;
  }
  var owner = id.indexOf(prefix) === 0 ? id.substring(prefix.length) : userCtx.name;
  for (var d = 0; d < docs.length; d++) {
    if (docs[d] && docs[d].name !== undefined && docs[d].name !== userCtx.name) {
      throw({ forbidden: 'Users may only change their own settings' });
    }
  }
  if (owner !== userCtx.name) {
    throw({ forbidden: 'Users may only change their own settings' });
  }
  if (newDoc.type !== 'user-settings') {
    return;
  }
  if (newDoc.known !== undefined && typeof newDoc.known !== 'boolean') {
    throw({ forbidden: 'known is not a boolean.' });
  }
  if (!oldDoc) {
    throw({ forbidden: 'You are not authorized to create user-settings' });
  }
  var same = Array.isArray(newDoc.roles) && Array.isArray(oldDoc.roles) &&
    newDoc.roles.length === oldDoc.roles.length;
  for (var r = 0; same && r < oldDoc.roles.length; r++) {
    same = JSON.stringify(newDoc.roles[r]) === JSON.stringify(oldDoc.roles[r]);
  }
  if (!same) {
    throw({ forbidden: 'You are not authorized to edit roles' });
  }
}
