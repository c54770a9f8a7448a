module.exports = function (weight, height) {
  return weight / (height * height);
};
