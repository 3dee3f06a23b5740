// Checks Kubernetes manifests against their schemas, offline: the Kubernetes API's
// (kubernetes-models) and KEDA's CRDs (@kubernetes-models/keda), both from the npm registry and
// pinned in package-lock.json. Usage: node validate.mjs FILE.yaml...
// Prints `ok FILE KIND` per valid document; exits 1 naming each invalid one and why.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const models = {
  "autoscaling/v2 HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
};

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    const kind = `${doc?.apiVersion} ${doc?.kind}`;
    const Model = models[kind];
    if (!Model) {
      console.log(`invalid ${file}: no schema for ${kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`ok ${file} ${kind}`);
    } catch (e) {
      console.log(`invalid ${file} ${kind}: ${e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
