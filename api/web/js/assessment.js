// The accuracy assessment of a completed analysis (Olofsson et al. 2014): overall accuracy, the
// confusion matrix and the areas estimated from reference data, each with its 95 % interval.
// Analysts and admins can (re)assess; without one the panel says how to add reference data.
import * as api from "./api.js";
import { classLabel } from "./map.js";

/** Fills the #assessment section for analysis `id`; `canAssess` shows the Assess button.
 * `report` shows errors that are not the assessment's own (an ended session, say). */
export async function showAssessment(section, id, canAssess, report) {
  const path = `/analyses/${id}/assessment`;
  const button = section.querySelector("#assess");
  const problem = section.querySelector("#assessment-error");
  const none = section.querySelector("#assessment-none");
  button.hidden = !canAssess;
  none.textContent = canAssess
    ? "No accuracy assessment yet. Upload reference fields over this AOI, each labelled with its crop " +
      "(POST /fields?purpose=reference&label_property=<the property naming the crop>), or label the map's " +
      `sample (POST /analyses/${id}/sample-design, then /sample-labels), then press Assess.`
    : "No accuracy assessment yet: an analyst adds reference data (labelled fields or sample points) and assesses the map."; // prettier-ignore

  const show = (assessment) => {
    none.hidden = assessment !== null;
    section.querySelector("#assessment-result").hidden = assessment === null;
    if (assessment !== null) fill(section, assessment);
    section.dataset.assessment = assessment === null ? "none" : "shown";
  };
  const refused = (error) => {
    if (!(error instanceof api.ApiError) || error.status === 401) return report(error);
    problem.textContent = `Cannot assess this map: ${error.message}`;
    problem.hidden = false;
    return undefined;
  };

  button.addEventListener("click", async () => {
    button.disabled = true;
    problem.hidden = true;
    try {
      const made = await api.call(path, { method: "POST" });
      show(made && made.confusion_matrix ? made : await api.call(path));
    } catch (error) {
      refused(error);
    } finally {
      button.disabled = false;
    }
  });
  try {
    show(await api.call(path));
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404) show(null);
    else refused(error);
  }
}

function percent(fraction) {
  return `${(fraction * 100).toFixed(1)} %`;
}

function hectares(value) {
  return `${value.toLocaleString("en", { maximumFractionDigits: 1 })} ha`;
}

/** "value ± half the 95 % interval" of an estimate {value, standard_error, ci95}; "–" when none. */
function plusMinus(estimate, format) {
  if (!estimate) return "–";
  const [low, high] = estimate.ci95;
  return `${format(estimate.value)} ± ${format((high - low) / 2)}`;
}

function fill(section, assessment) {
  const overall = assessment.overall_accuracy;
  const [low, high] = overall.ci95;
  section.querySelector("#overall-accuracy").textContent =
    `Overall accuracy ${percent(overall.value)} (95 % interval ${percent(low)} – ${percent(high)})`;
  const what = assessment.source === "sample" ? "a labelled sample" : "reference fields";
  const unit = assessment.unit === "points" ? "sample points" : "reference pixels";
  section.querySelector("#assessment-source").textContent =
    `From ${what}: ${assessment.sample_size.toLocaleString("en")} ${unit}, ` +
    `assessed ${new Date(assessment.created_at).toLocaleString()}.`;
  section.querySelector("#matrix-unit").textContent = `counts of ${unit}`;
  const agreement = section.querySelector("#field-agreement");
  const fields = assessment.fields;
  agreement.hidden = !fields;
  if (fields) {
    agreement.textContent = `${fields.agreeing} of ${fields.assessed} reference fields agree with the map (${percent(fields.agreement)}).`; // prettier-ignore
  }
  fillMatrix(section.querySelector("#confusion-matrix"), assessment);
  fillAreas(section.querySelector("#area-table"), assessment);
  section.querySelector("#assessment-note").textContent = assessment.note || "";
  section.querySelector("#assessment-note").hidden = !assessment.note;
}

function row(cells, header = null) {
  const tr = document.createElement("tr");
  if (header !== null) {
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = header;
    tr.append(th);
  }
  for (const value of cells) {
    const td = document.createElement("td");
    td.textContent = value;
    tr.append(td);
  }
  return tr;
}

function headings(names) {
  const tr = document.createElement("tr");
  for (const name of names) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    tr.append(th);
  }
  const head = document.createElement("thead");
  head.append(tr);
  return head;
}

/** Map classes down, reference classes across, in the assessment's class order. */
function fillMatrix(table, assessment) {
  const names = assessment.classes.map((c) => classLabel(c.name));
  const body = document.createElement("tbody");
  assessment.confusion_matrix.forEach((counts, i) => {
    const tr = row(counts.map((n) => n.toLocaleString("en")), names[i]);
    tr.dataset.class = assessment.classes[i].name;
    tr.querySelectorAll("td")[i].classList.add("diagonal");
    body.append(tr);
  });
  table.replaceChildren(headings(["map \\ reference", ...names]), body);
}

function fillAreas(table, assessment) {
  const body = document.createElement("tbody");
  for (const stat of assessment.per_class) {
    const tr = row(
      [
        hectares(stat.mapped_area_ha),
        plusMinus(stat.estimated_area_ha, hectares),
        plusMinus(stat.users_accuracy, percent),
        plusMinus(stat.producers_accuracy, percent),
        typeof stat.f1 === "number" ? stat.f1.toFixed(2) : "–",
      ],
      classLabel(stat.name),
    );
    tr.dataset.class = stat.name;
    body.append(tr);
  }
  table.replaceChildren(headings(["Class", "Mapped", "Estimated", "UA", "PA", "F1"]), body);
}
