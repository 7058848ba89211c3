// Validates Kubernetes custom resources (Argo CD, Argo Rollouts, Flux, the Prometheus Operator) offline with the compiled validators that the
// @kubernetes-models packages ship with their models, as Kubernetes' own schemas do not cover them.
// Reads one JSON value on stdin, a document or an array of documents. Prints one line for each document
// that is invalid or whose apiVersion and kind no installed package models, and then exits 1; exits 0
// when every document is valid.
import { readFileSync } from "node:fs";
import * as argoCd from "@kubernetes-models/argo-cd";
import * as argoRollouts from "@kubernetes-models/argo-rollouts";
import * as fluxCd from "@kubernetes-models/flux-cd";
import * as prometheusOperator from "@kubernetes-models/prometheus-operator";

// Every model class of the packages, by "apiVersion kind" (the packages export them grouped by API group and version).
const models = new Map();
function collect(group) {
  for (const value of Object.values(group)) {
    if (typeof value === "function" && value.apiVersion && value.kind) {
      models.set(`${value.apiVersion} ${value.kind}`, value);
    } else if (value && typeof value === "object") {
      collect(value);
    }
  }
}
collect(argoCd);
collect(argoRollouts);
collect(fluxCd);
collect(prometheusOperator);

const input = JSON.parse(readFileSync(0, "utf8"));
const documents = Array.isArray(input) ? input : [input];
let invalid = 0;
documents.forEach((document, index) => {
  const name = `document ${index + 1} (${document?.kind ?? "no kind"} ${document?.metadata?.name ?? "without a name"})`;
  const Model = models.get(`${document?.apiVersion} ${document?.kind}`);
  if (!Model) {
    console.log(`${name}: no installed model knows apiVersion ${document?.apiVersion} kind ${document?.kind}`);
    invalid += 1;
    return;
  }
  try {
    new Model(document).validate();
  } catch (error) {
    console.log(`${name}: ${String(error.message).replace(/\s*\n\s*/g, "; ")}`);
    invalid += 1;
  }
});
process.exit(invalid ? 1 : 0);
