function (doc) {
  // read:<type>:<id> docs mark a report or message read on the user's devices; counted by type
  var parts = doc._id.split(':');
  if (parts[0] === 'read') {
    emit(parts[1]);
  }
}
