const cart = JSON.parse(localStorage.getItem("cart") || "[]");
document.title = `Storefront (${cart.length})`;
