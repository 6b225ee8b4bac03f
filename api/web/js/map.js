// The map of the viewer: an optional base map that gives way to a plain background when
// it cannot be reached, the crop layer (tiles rendered by the API from the analysis'
// COG, of its classes or its confidence), the AOI outline, field parcels coloured by
// predicted crop with their evidence, and AOI drawing.
import { blob } from "./api.js";

const L = window.L;
const FRANCE = [[42.3, -4.8], [51.1, 8.2]]; // where a map with nothing on it yet looks

// The colours of the confidence tiles, as cropai/webtiles.py CONFIDENCE_RAMP paints them
// (tests/unit/test_web_assets.py holds the two together).
export const CONFIDENCE_RAMP = [
  { lower: 0, upper: 20, colour: "#482475" },
  { lower: 20, upper: 40, colour: "#355f8d" },
  { lower: 40, upper: 60, colour: "#21918c" },
  { lower: 60, upper: 80, colour: "#44bf70" },
  { lower: 80, upper: 100, colour: "#bddf26" },
];

export function createMap(element, config) {
  const map = L.map(element, { maxZoom: 20 });
  map.fitBounds(FRANCE);
  L.control.scale({ imperial: false }).addTo(map);
  addBaseMap(map, config);
  return map;
}

function addBaseMap(map, config) {
  const container = map.getContainer();
  if (!config.basemap_url) {
    container.dataset.basemap = "none";
    return;
  }
  const base = L.tileLayer(config.basemap_url, { attribution: config.basemap_attribution, maxZoom: 19 });
  let loaded = 0;
  let failed = 0;
  base.on("tileload", () => {
    loaded += 1;
    container.dataset.basemap = "loaded";
  });
  base.on("tileerror", () => {
    failed += 1;
  });
  // "load" fires once every tile in view has been tried: none loaded means no base map here.
  base.on("load", () => {
    if (loaded === 0 && failed > 0) {
      setTimeout(() => map.removeLayer(base)); // not from inside the layer's own event
      container.dataset.basemap = "unreachable";
      note(map, "Base map unreachable: showing a plain background.");
    }
  });
  base.addTo(map);
}

function note(map, text) {
  const control = L.control({ position: "bottomleft" });
  control.onAdd = () => {
    const box = L.DomUtil.create("div", "map-note");
    box.textContent = text;
    return box;
  };
  control.addTo(map);
}

// Map tiles need the API's Authorization header, which an <img src> cannot send: each
// tile is fetched, then shown from a blob URL. `layer` picks the API's tile layer.
const ApiTiles = L.GridLayer.extend({
  createTile(coords, done) {
    const tile = document.createElement("img");
    tile.alt = "";
    tile.dataset.layer = this.options.layer;
    blob(`${this.options.path}/${coords.z}/${coords.x}/${coords.y}.png?layer=${this.options.layer}`)
      .then((body) => {
        const url = URL.createObjectURL(body);
        tile.onload = () => {
          URL.revokeObjectURL(url);
          done(null, tile);
        };
        tile.src = url;
      })
      .catch((error) => done(error, tile));
    return tile;
  },

  /** Shows the API's "class" or "confidence" tiles in place of the current ones. */
  showLayer(layer) {
    if (layer === this.options.layer) return;
    this.options.layer = layer;
    this.redraw();
  },
});

export function cropLayer(analysisId) {
  // The API tiles a map down to three zooms past its pixels' own (zoom 17 for 10 m pixels below
  // about 60° of latitude); beyond that the browser enlarges zoom-17 tiles.
  return new ApiTiles({ path: `/analyses/${analysisId}/tiles`, layer: "class", maxNativeZoom: 17, maxZoom: 20,
                        opacity: 0.85, className: "crop-layer" }); // prettier-ignore
}

export function aoiLayer(geometry) {
  return L.geoJSON(geometry, { style: { color: "#111", weight: 2, dashArray: "6 4", fill: false }, interactive: false });
}

export function layerSwitcher(overlays) {
  return L.control.layers(null, overlays, { collapsed: false });
}

export function classLabel(name) {
  return name.replaceAll("_", " ");
}

function percent(fraction) {
  return `${Math.round(fraction * 100)} %`;
}

export const FIELD_FILL_OPACITY = 0.55;

export function fieldsLayer(collection) {
  return L.geoJSON(collection, {
    style: (feature) => ({
      color: "#202020", weight: 1, fillColor: feature.properties.class_colour, fillOpacity: FIELD_FILL_OPACITY,
      className: `field field-${feature.properties.field_id}` +
        (feature.properties.insufficient_evidence === true ? " field-insufficient-evidence" : ""),
    }), // prettier-ignore
    onEachFeature: (feature, layer) => layer.bindPopup(() => fieldPopup(feature.properties)),
  });
}

function fieldPopup(field) {
  const box = document.createElement("div");
  box.className = "field-popup";
  const title = document.createElement("strong");
  const name = field.name || String(field.field_id);
  title.textContent = /^\d+$/.test(name) ? `Field ${name}` : name; // a bare parcel number reads better so
  const facts = document.createElement("dl");
  const rows = [
    ["Crop", classLabel(field.class_name)],
    ["Share", `${percent(field.share)} of its pixels`],
    ["Confidence", percent(field.mean_confidence)],
    ["Area", `${field.area_ha.toFixed(2)} ha`],
  ];
  // The evidence: how much of the season's time bins saw the field clear (the rest was gap-filled).
  if (typeof field.gap_filled_share === "number") {
    rows.push(["Seen clear", `${percent(1 - field.gap_filled_share)} of the season`]);
  }
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.fact = term.toLowerCase().replaceAll(" ", "-");
    facts.append(dt, dd);
  }
  box.append(title, facts);
  if (field.insufficient_evidence === true) {
    const warning = document.createElement("p");
    warning.className = "insufficient-evidence";
    warning.dataset.fact = "insufficient-evidence";
    warning.textContent = "Insufficient evidence: too little of the season was seen clear to trust this crop.";
    box.append(warning);
  }
  return box;
}

/** Draws an AOI polygon by clicking its corners; reports the GeoJSON geometry when finished. */
export class AoiDrawer {
  constructor(map, onChange) {
    this.map = map;
    this.onChange = onChange;
    this.corners = [];
    this.sketch = L.polyline([], { color: "#c0392b", weight: 2, dashArray: "4 4" });
    this.shape = null;
    this.addCorner = (event) => {
      this.corners.push(event.latlng);
      this.sketch.setLatLngs(this.corners);
    };
  }

  get drawing() {
    return this.map.hasLayer(this.sketch);
  }

  start() {
    this.clear();
    this.sketch.addTo(this.map);
    this.map.on("click", this.addCorner);
    this.map.doubleClickZoom.disable();
    this.map.getContainer().classList.add("drawing");
  }

  /** Closes the polygon; false when it has fewer than three corners. */
  finish() {
    if (this.corners.length < 3) return false;
    const polygon = L.polygon(this.corners);
    this.stop();
    this.show(polygon.toGeoJSON().geometry);
    return true;
  }

  stop() {
    this.map.off("click", this.addCorner);
    this.map.removeLayer(this.sketch);
    this.map.doubleClickZoom.enable();
    this.map.getContainer().classList.remove("drawing");
    this.corners = [];
    this.sketch.setLatLngs([]);
  }

  show(geometry) {
    if (this.shape !== null) this.map.removeLayer(this.shape);
    this.shape = L.geoJSON(geometry, { style: { color: "#c0392b", weight: 2, fillOpacity: 0.1 } }).addTo(this.map);
    this.map.fitBounds(this.shape.getBounds(), { padding: [30, 30] });
    this.onChange(geometry);
  }

  clear() {
    this.stop();
    if (this.shape !== null) this.map.removeLayer(this.shape);
    this.shape = null;
    this.onChange(null);
  }
}
