// The dashboard's maps, drawn with OpenLayers (static/vendor/ol): a job's tiles coloured by status
// and its result over the relief of its collection; tiles to choose for a new job; a data file.
// Every layer comes from the site's own API (map tiles, TileJSON, GeoJSON): nothing from elsewhere.
// A panel says what to draw in its data-* attributes (templates/_map.html).
"use strict";

(() => {
  if (!window.ol) return;
  const STATUS_COLOURS = {waiting: "#c9c1a6", pending: "#8c9aa8", running: "#e0a100", succeeded: "#2e8540", failed: "#b3261e",
                          canceled: "#7a6f8f"};
  const CHOSEN = "#1f5fa8";
  const TOWN = "#c25e00";

  // A JSON answer; a 503 (a data file's map still being made) is asked again as Retry-After says.
  async function getJSON(url, tries = 60) {
    const answer = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (answer.status === 503 && tries > 1) {
      const seconds = Number(answer.headers.get("Retry-After")) || 2;
      await new Promise((done) => setTimeout(done, 1000 * seconds));
      return getJSON(url, tries - 1);
    }
    if (!answer.ok) throw new Error(`${url} answered ${answer.status}`);
    return answer.json();
  }

  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }

  function outlined(colour, fill, width = 1.5) {
    const stroke = new ol.style.Stroke({color: colour, width});
    const inside = new ol.style.Fill({color: fill});
    return new ol.style.Style({stroke, fill: inside, image: new ol.style.Circle({radius: 4, stroke, fill: inside})});
  }

  function makeMap(panel) {
    const map = new ol.Map({
      target: panel.querySelector(".map"),
      view: new ol.View({center: [0, 0], zoom: 2, maxZoom: 21}),
      controls: ol.control.defaults.defaults({attribution: false, rotate: false}).extend([new ol.control.ScaleLine()]),
    });
    panel.map = map;  // for the browser tests and the console
    return map;
  }

  // A raster layer from a TileJSON document: the site's map tiles of a collection, output or file.
  async function rasterLayer(url, {zIndex = 0, opacity = 1, anyZoom = false} = {}) {
    const doc = await getJSON(url);
    const layer = new ol.layer.Tile({
      source: new ol.source.XYZ({url: doc.tiles[0], minZoom: anyZoom ? 0 : doc.minzoom, maxZoom: doc.maxzoom}),
      minZoom: anyZoom ? undefined : Math.max(0, doc.minzoom - 0.5), zIndex, opacity,
    });
    layer.set("tilejson", doc);
    return layer;
  }

  // Add a layer under `name`, shown as its switch (if any) says, in place of any it had.
  function put(panel, map, layers, name, layer) {
    if (layers[name]) map.removeLayer(layers[name]);
    layers[name] = layer;
    const box = panel.querySelector(`[data-layer=${name}]`);
    if (box) layer.setVisible(box.checked);
    map.addLayer(layer);
  }

  // A layer of the GeoJSON at `url` (a function of the extent asked for, with `strategy`).
  function vectorLayer(url, style, zIndex, strategy) {
    const format = new ol.format.GeoJSON();
    const truncated = new Set();  // extents whose answer was cut short: their parts are asked for closer in
    const source = new ol.source.Vector({
      strategy: strategy || ol.loadingstrategy.all,
      loader: (extent, resolution, projection, success, failure) => {
        const key = extent.join(",");
        if (truncated.has(key)) { source.removeLoadedExtent(extent); success([]); return; }
        getJSON(typeof url === "function" ? url(extent) : url).then((doc) => {
          const features = format.readFeatures(doc, {featureProjection: projection});
          source.addFeatures(features);
          if (doc.truncated) { truncated.add(key); source.removeLoadedExtent(extent); }
          success(features);
        }).catch(() => { source.removeLoadedExtent(extent); failure(); });
      },
    });
    return new ol.layer.Vector({source, style, zIndex});
  }

  // A collection's tiles, read a map tile's area at a time (it may have hundreds of thousands; the
  // server answers at most 5,000 for an area, and says when it cut the answer short).
  function footprintsLayer(collectionUrl, style, zIndex) {
    const url = (extent) => {
      const [west, south, east, north] = ol.proj.transformExtent(extent, "EPSG:3857", "EPSG:4326");
      const clamp = (v, limit) => Math.max(-limit, Math.min(limit, v)).toFixed(6);
      return `${collectionUrl}footprints/?bbox=${clamp(west, 180)},${clamp(south, 90)},${clamp(east, 180)},${clamp(north, 90)}`;
    };
    return vectorLayer(url, style, zIndex, ol.loadingstrategy.tile(ol.tilegrid.createXYZ({tileSize: 512})));
  }

  function fitOnLoad(map, layer, maxZoom = 17) {
    layer.getSource().once("featuresloadend", () => {
      const extent = layer.getSource().getExtent();
      if (extent && isFinite(extent[0])) map.getView().fit(extent, {padding: [24, 24, 24, 24], maxZoom});
    });
  }

  function fitTo(map, bounds) {
    const extent = ol.proj.transformExtent(bounds, "EPSG:4326", "EPSG:3857");
    map.getView().fit(extent, {padding: [24, 24, 24, 24], maxZoom: 17});
  }

  function toggles(panel, layers) {
    panel.querySelectorAll("[data-layer]").forEach((box) => {
      box.addEventListener("change", () => { const layer = layers[box.dataset.layer]; if (layer) layer.setVisible(box.checked); });
    });
  }

  function showLegend(panel, legend) {
    const box = panel.querySelector(".map-legend");
    if (!box || !legend || legend.style === "rgb" || !legend.range) return;
    const canvas = box.querySelector("canvas");
    const context = canvas.getContext("2d");
    const colours = legend.colors || ["#000000", "#ffffff"];
    const gradient = context.createLinearGradient(0, 0, canvas.width, 0);
    colours.forEach((colour, i) => gradient.addColorStop(i / (colours.length - 1), colour));
    context.fillStyle = gradient;
    context.fillRect(0, 0, canvas.width, canvas.height);
    const shown = (value) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3));
    box.querySelector(".map-legend-low").textContent = shown(legend.range[0]);
    box.querySelector(".map-legend-high").textContent = shown(legend.range[1]);
    box.querySelector(".map-legend-name").textContent = legend.colormap || legend.style;
    box.hidden = false;
  }

  // A popup of rows [name, value] over a point of the map; Escape or its button closes it.
  function popup(panel, map) {
    const element = panel.querySelector(".map-popup");
    const body = element.querySelector(".map-popup-body");
    const overlay = new ol.Overlay({element, positioning: "bottom-center", offset: [0, -6],
                                    autoPan: {animation: {duration: 150}}});
    map.addOverlay(overlay);
    const close = () => { overlay.setPosition(undefined); element.hidden = true; };
    element.querySelector(".map-popup-close").addEventListener("click", () => { close(); map.getTargetElement().focus(); });
    element.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
    return {
      close,
      show(coordinate, rows) {
        body.replaceChildren();
        const list = document.createElement("dl");
        list.className = "facts";
        for (const [name, value] of rows) {
          const term = document.createElement("dt");
          term.textContent = name;
          const detail = document.createElement("dd");
          detail.textContent = value;  // text, never HTML: errors and log lines are the workers' words
          detail.dataset.row = name;
          list.append(term, detail);
        }
        body.append(list);
        element.hidden = false;
        overlay.setPosition(coordinate);
      },
      set(name, value) {
        const row = body.querySelector(`dd[data-row='${name}']`);
        if (row) row.textContent = value;
      },
    };
  }

  // The job page: the relief of its collection, its tiles coloured by status (live, from the page's
  // updates: dashboard.js sends them as "jobsite:live" events), and its result once it has one.
  async function jobMap(panel) {
    const map = makeMap(panel);
    const layers = {};
    const tileStyles = {};
    const tileStyle = (feature) => {
      const status = feature.get("status");
      const key = `${status}:${Boolean(layers.result)}`;
      if (!tileStyles[key]) tileStyles[key] = outlined(STATUS_COLOURS[status] || "#555", rgba(STATUS_COLOURS[status] || "#555555", layers.result ? 0.08 : 0.4));
      return tileStyles[key];
    };
    layers.tiles = vectorLayer(panel.dataset.footprints, tileStyle, 2);
    map.addLayer(layers.tiles);
    fitOnLoad(map, layers.tiles);
    toggles(panel, layers);
    rasterLayer(panel.dataset.base).then((layer) => put(panel, map, layers, "base", layer)).catch(() => {});
    // Around the job: its collection's other tiles and the towns, outlined.
    put(panel, map, layers, "collection", footprintsLayer(panel.dataset.collection, outlined("rgba(40, 40, 40, 0.35)",
                                                                                              "rgba(0, 0, 0, 0)", 1), 1));
    put(panel, map, layers, "towns", vectorLayer(panel.dataset.towns, outlined("rgba(194, 94, 0, 0.7)", "rgba(0, 0, 0, 0)", 2), 3));

    let output = null;
    let result = null;  // the one request for the result layer: live updates ask again and again
    const showResult = () => {
      result = result || (async () => {
        const outputs = await getJSON(panel.dataset.outputs);
        output = outputs.find((o) => o.content_type === "image/tiff") || null;
        if (!output) { result = null; return; }
        const opacity = panel.querySelector("[data-opacity=result]");
        put(panel, map, layers, "result",
            await rasterLayer(`${output.url}/tilejson.json`, {zIndex: 1, opacity: opacity.value / 100, anyZoom: true}));
        layers.tiles.changed();
        showLegend(panel, layers.result.get("tilejson").legend);
        opacity.addEventListener("input", () => layers.result.setOpacity(opacity.value / 100));
        panel.dataset.result = "shown";
      })().catch(() => { result = null; });
      return result;
    };
    showResult();

    const page = panel.closest(".job-page");
    if (page) {
      page.addEventListener("jobsite:live", (event) => {
        const source = layers.tiles.getSource();
        for (const [tile, status] of Object.entries(event.detail.tiles)) {
          const feature = source.getFeatureById(Number(tile));
          if (feature && feature.get("status") !== status) feature.set("status", status);
        }
        if (event.detail.status === "succeeded") showResult();
      });
    }

    // A click reads the tile as it is now (its attempts and error are not in the page's updates).
    const info = popup(panel, map);
    let clicks = 0;
    map.on("singleclick", async (event) => {
      const feature = map.forEachFeatureAtPixel(event.pixel, (f) => f, {layerFilter: (layer) => layer === layers.tiles});
      if (!feature) { info.close(); return; }
      const click = ++clicks;
      const latest = (write) => (value) => { if (click === clicks) write(value); };  // a later click wins
      const id = feature.getId();
      const rows = [["tile", String(id)], ["status", feature.get("status")], ["attempts", String(feature.get("attempts"))],
                    ["error", feature.get("error") || "none"]];
      if (output) rows.push(["value", "…"]);
      rows.push(["log", "…"]);
      info.show(event.coordinate, rows);
      getJSON(`${panel.dataset.footprints}?tile=${id}`).then(latest((found) => {
        const now = found.features[0];
        if (!now) return;
        feature.setProperties(now.properties);
        info.set("status", now.properties.status);
        info.set("attempts", String(now.properties.attempts));
        info.set("error", now.properties.error || "none");
      })).catch(() => {});
      const [lon, lat] = ol.proj.toLonLat(event.coordinate);
      if (output) {
        getJSON(`${output.url}/value/?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`)
          .then(latest((found) => info.set("value", found.values === null ? "outside the result"
            : found.values.map((v) => (v === null ? "no data" : String(Number(v.toPrecision(6))))).join(", "))))
          .catch(latest(() => info.set("value", "not available")));
      }
      getJSON(`${panel.dataset.logs}?tile=${id}&limit=1000`)
        .then(latest((found) => info.set("log", found.results.slice(-5).map((line) => `${line.level}: ${line.message}`).join("\n")
          + (found.results.length === 1000 ? "\n(the first 1,000 lines; the API has the rest)" : "") || "no lines")))
        .catch(latest(() => info.set("log", "not available")));
    });
  }

  // Whether a polygon and a tile's polygon meet: a corner of one inside the other, or edges that cross.
  function meets(polygon, tile) {
    const a = polygon.getLinearRing(0).getCoordinates();
    const b = tile.getLinearRing(0).getCoordinates();
    if (b.some((c) => polygon.intersectsCoordinate(c)) || a.some((c) => tile.intersectsCoordinate(c))) return true;
    const side = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
    for (let i = 0; i + 1 < a.length; i++) {
      for (let j = 0; j + 1 < b.length; j++) {
        if (side(a[i], a[i + 1], b[j]) !== side(a[i], a[i + 1], b[j + 1])
            && side(b[j], b[j + 1], a[i]) !== side(b[j], b[j + 1], a[i + 1])) return true;
      }
    }
    return false;
  }

  // The new-job form: tiles chosen by clicking or drawing fill its tile ids; a town chosen shows its
  // outline and tiles. The form's own script (job_form.js) then estimates the job.
  function selectMap(panel) {
    const form = panel.closest("form");
    const ids = form.elements.tile_ids;
    const town = form.elements.town;
    const collection = form.elements.collection;
    const count = panel.querySelector(".map-selection");
    const map = makeMap(panel);
    const layers = {};
    const chosen = new Set((ids.value.match(/\d+/g) || []).map(Number));
    let townTiles = new Set();
    let townId = null;
    const styles = {chosen: outlined(CHOSEN, rgba(CHOSEN, 0.45), 2), town: outlined(TOWN, rgba(TOWN, 0.35)),
                    other: outlined("rgba(40, 40, 40, 0.6)", "rgba(255, 255, 255, 0.05)", 1)};
    const tileStyle = (feature) => (chosen.has(feature.getId()) ? styles.chosen
      : townTiles.has(feature.getId()) ? styles.town : styles.other);
    const townStyle = (feature) => (feature.getId() === townId ? outlined(TOWN, "rgba(0, 0, 0, 0)", 3)
      : outlined("rgba(194, 94, 0, 0.5)", "rgba(0, 0, 0, 0)", 1));
    layers.towns = vectorLayer(panel.dataset.towns, townStyle, 3);
    map.addLayer(layers.towns);
    toggles(panel, layers);

    const say = () => {
      count.textContent = townId !== null ? `${townTiles.size} tiles of the town chosen`
        : `${chosen.size} tile${chosen.size === 1 ? "" : "s"} chosen`;
      panel.dataset.chosen = String(townId !== null ? townTiles.size : chosen.size);
    };
    const write = () => {
      ids.value = [...chosen].sort((x, y) => x - y).join(", ");
      if (chosen.size && town && town.value) { town.value = ""; townId = null; townTiles = new Set(); layers.towns.changed(); }
      ids.dispatchEvent(new Event("change", {bubbles: true}));
      layers.tiles.changed();
      say();
    };
    // The collection's answer places the map.
    const load = async () => {
      const name = collection ? collection.value : "default";
      const url = `${panel.dataset.collections}${name}/`;
      for (const key of ["base", "tiles"]) if (layers[key]) { map.removeLayer(layers[key]); layers[key] = null; }
      layers.tiles = footprintsLayer(url, tileStyle, 2);
      const source = layers.tiles.getSource();
      map.addLayer(layers.tiles);
      const info = await getJSON(url);
      if (layers.tiles.getSource() !== source) return;  // another collection was chosen meanwhile
      if (info.bounds_wgs84) fitTo(map, info.bounds_wgs84);
      if (!info.tile_count) return;  // an empty collection has no relief
      const relief = await rasterLayer(`${url}tilejson.json`);
      if (layers.tiles.getSource() === source) put(panel, map, layers, "base", relief);
    };
    const showTown = async () => {
      townId = town && town.value ? Number(town.value) : null;
      townTiles = new Set();
      if (townId !== null) {
        chosen.clear();
        ids.value = "";
        const found = await getJSON(`${panel.dataset.towns.replace(/geojson\/$/, "")}${townId}/`);
        townTiles = new Set(found.tiles_by_collection[collection ? collection.value : "default"] || []);
        const feature = layers.towns.getSource().getFeatureById(townId);
        if (feature && feature.getGeometry()) map.getView().fit(feature.getGeometry().getExtent(), {padding: [24, 24, 24, 24], maxZoom: 16});
      }
      layers.towns.changed();
      if (layers.tiles) layers.tiles.changed();
      say();
    };
    load().catch(() => {});
    say();
    if (collection) collection.addEventListener("change", () => { chosen.clear(); write(); load().catch(() => {}); showTown(); });
    if (town) { town.addEventListener("change", showTown); if (town.value) showTown(); }
    ids.addEventListener("input", () => {
      chosen.clear();
      (ids.value.match(/\d+/g) || []).forEach((id) => chosen.add(Number(id)));
      layers.tiles.changed();
      say();
    });

    let drawing = null;
    const stopDrawing = () => { if (drawing) { map.removeInteraction(drawing); drawing = null; panel.dataset.drawing = ""; } };
    let drewAt = 0;  // the click that ends a drawing also comes as a single click, a moment later
    map.on("singleclick", (event) => {
      if (drawing || Date.now() - drewAt < 1000) return;
      const feature = map.forEachFeatureAtPixel(event.pixel, (f) => f, {layerFilter: (layer) => layer === layers.tiles});
      if (!feature) return;
      const id = feature.getId();
      if (chosen.has(id)) chosen.delete(id); else chosen.add(id);
      write();
    });
    panel.querySelectorAll("[data-draw]").forEach((button) => {
      button.addEventListener("click", () => {
        stopDrawing();
        if (button.dataset.draw === "clear") { chosen.clear(); write(); return; }
        const box = button.dataset.draw === "box";
        drawing = new ol.interaction.Draw(box ? {type: "Circle", geometryFunction: ol.interaction.Draw.createBox()}
          : {type: "Polygon"});
        drawing.on("drawend", (event) => {
          const shape = event.feature.getGeometry();
          layers.tiles.getSource().forEachFeatureIntersectingExtent(shape.getExtent(), (feature) => {
            const tile = feature.getGeometry();
            if (box ? tile.intersectsExtent(shape.getExtent()) : meets(shape, tile)) chosen.add(feature.getId());
          });
          drewAt = Date.now();
          setTimeout(stopDrawing, 0);
          write();
        });
        map.addInteraction(drawing);
        panel.dataset.drawing = button.dataset.draw;
        map.getTargetElement().focus();
      });
    });
    map.getTargetElement().addEventListener("keydown", (event) => { if (event.key === "Escape") stopDrawing(); });
  }

  // A data file: a raster as map tiles, a vector's features as GeoJSON, over the relief.
  async function datafileMap(panel) {
    const map = makeMap(panel);
    const layers = {};
    toggles(panel, layers);
    // The relief of a collection that has tiles (an empty one has no map tiles).
    getJSON(panel.dataset.collection).then(async (collection) => {
      if (!collection.tile_count) return;
      put(panel, map, layers, "base", await rasterLayer(`${panel.dataset.collection}tilejson.json`));
    }).catch(() => {});
    if (panel.dataset.tilejson) {
      put(panel, map, layers, "data", await rasterLayer(panel.dataset.tilejson, {zIndex: 1, anyZoom: true}));
      fitTo(map, layers.data.get("tilejson").bounds);
      showLegend(panel, layers.data.get("tilejson").legend);
    } else if (panel.dataset.geojson) {
      put(panel, map, layers, "data", vectorLayer(panel.dataset.geojson, outlined(CHOSEN, rgba(CHOSEN, 0.25), 2), 1));
      fitOnLoad(map, layers.data);
    }
  }

  const kinds = {job: jobMap, select: selectMap, datafile: datafileMap};
  document.querySelectorAll("[data-map]").forEach((panel) => {
    const draw = kinds[panel.dataset.map];
    if (draw) Promise.resolve(draw(panel)).catch((error) => { panel.dataset.mapError = String(error); });
  });
})();
