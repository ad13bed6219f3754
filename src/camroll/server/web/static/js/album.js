// One album (#/album?id=N); the page lives in albums.js.
export { renderAlbum as render } from "./albums.js";
