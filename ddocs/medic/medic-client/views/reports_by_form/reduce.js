function () {
  // only the keys matter: group=true lists the forms that have reports
  return true;
}
