class StockTab extends HTMLElement {
  connectedCallback() {
    this.textContent = 'Stock levels';
  }
}
module.exports = StockTab;
