// placeholder: replaced by the real page.
export const routes = [];
