// Command psacheck evaluates pod specs against the Kubernetes "restricted" Pod Security
// Standard with the API server's own admission library (k8s.io/pod-security-admission).
//
// Input on stdin: a JSON object {"<id>": <PodSpec>, ...}. Output on stdout: a JSON object
// {"<id>": "" (allowed) or "<reasons>"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

func main() {
	var specs map[string]corev1.PodSpec
	if err := json.NewDecoder(os.Stdin).Decode(&specs); err != nil {
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
	for id, spec := range specs {
		spec := spec
		result := policy.AggregateCheckResults(evaluator.EvaluatePod(level, &metav1.ObjectMeta{}, &spec))
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
