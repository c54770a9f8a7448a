module.exports = {
  fields: [
    { appliesToType: 'person', label: 'contact.name', value: 'name', width: 4 }
  ],
  cards: [],
  context: {}
};
