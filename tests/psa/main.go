// Command psacheck evaluates pod specs against the Kubernetes "restricted" Pod Security
// Standard with the API server's own admission library (k8s.io/pod-security-admission).
//
// Input on stdin: a JSON object {"<id>": <PodTemplateSpec>, ...} (metadata and spec: some checks,
// such as AppArmor's annotations, read the pod's metadata). Output on stdout: a JSON object
// {"<id>": "" (allowed) or "<reasons>"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

func main() {
	var pods map[string]corev1.PodTemplateSpec
	if err := json.NewDecoder(os.Stdin).Decode(&pods); err != nil {
		fmt.Fprintln(os.Stderr, "psacheck: bad input:", err)
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "psacheck:", err)
		os.Exit(2)
	}
	level := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	out := map[string]string{}
	for id, pod := range pods {
		pod := pod
		result := policy.AggregateCheckResults(evaluator.EvaluatePod(level, &pod.ObjectMeta, &pod.Spec))
		if result.Allowed {
			out[id] = ""
		} else {
			out[id] = result.ForbiddenReason() + ": " + result.ForbiddenDetail()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}
