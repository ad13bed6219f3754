// Problems: files not backed up, per device, with the reason and the fix each agent reported.
import { api } from "./api.js";
import { h, dateTime, errorBox, plural } from "./format.js";

// The device's own counts (the same as 'camroll status' there); the list it sends is capped.
function count(health) {
  const listed = health.problems.length;
  const total = Math.max(listed, health.failed_files + health.skipped_files);
  return total > listed ? `${plural(total, "file")}, the first ${listed} listed` : plural(total, "file");
}

export async function render(main) {
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Problems")));
  let devices;
  try {
    devices = await api("/devices");
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  const live = devices.filter((d) => !d.revoked);
  if (live.length && !live.some((d) => d.health)) {
    main.append(h("p", { class: "muted" }, "This server does not report device health yet, so problems cannot be listed."));
    return;
  }
  const withProblems = live.filter((d) => d.health?.problems?.length || d.health?.blocker);
  if (!withProblems.length) {
    main.append(h("p", { class: "ok-note" }, "No problems: every device reports all its files backed up or on their way."));
    return;
  }
  for (const d of withProblems) {
    const rows = d.health.problems.map((p) => h("tr", {},
      h("td", {}, h("code", {}, p.path)), h("td", {}, h("span", { class: `pill ${p.state === "failed" || p.state === "unreadable" ? "bad" : "warn"}` }, p.state)),
      h("td", {}, p.reason, p.fix ? h("div", { class: "muted" }, p.fix) : null),
      h("td", {}, p.attempts ? plural(p.attempts, "try") : "", p.next_retry_at ? h("div", { class: "muted" }, `next ${dateTime(p.next_retry_at)}`) : null)));
    main.append(h("section", { class: "card", dataset: { device: d.name } },
      h("h2", {}, d.name, h("span", { class: "muted" }, ` · ${count(d.health)}`)),
      d.health.blocker ? h("p", { class: "blocker" }, h("strong", {}, "Whole device blocked: "), d.health.blocker) : null,
      rows.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "File"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Reason and fix"), h("th", { scope: "col" }, "Retries"))),
        h("tbody", {}, rows))) : null));
  }
}
