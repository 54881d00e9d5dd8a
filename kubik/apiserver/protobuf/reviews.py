"""authorization.k8s.io/v1 and authentication.k8s.io/v1 messages: the access
reviews (`kubectl auth can-i`), TokenRequest (`kubectl create token`),
SelfSubjectReview (`kubectl auth whoami`) and TokenReview.

Field numbers are those of k8s.io/api authorization/v1 and authentication/v1
`generated.proto`.
"""

from __future__ import annotations

_REVIEW = {1: "metadata ObjectMeta", 2: "spec SubjectAccessReviewSpec"}

MESSAGES = {
    "SelfSubjectAccessReview": {
        1: "metadata ObjectMeta",
        2: "spec SelfSubjectAccessReviewSpec",
        3: "status SubjectAccessReviewStatus",
    },
    "SelfSubjectAccessReviewSpec": {
        1: "resourceAttributes ResourceAttributes",
        2: "nonResourceAttributes NonResourceAttributes",
    },
    "SubjectAccessReview": {**_REVIEW, 3: "status SubjectAccessReviewStatus"},
    "SubjectAccessReviewSpec": {
        1: "resourceAttributes ResourceAttributes",
        2: "nonResourceAttributes NonResourceAttributes",
        3: "user string",
        4: "groups []string",
        5: "extra {}ExtraValue",
        6: "uid string",
    },
    "ResourceAttributes": {
        1: "namespace string",
        2: "verb string",
        3: "group string",
        4: "version string",
        5: "resource string",
        6: "subresource string",
        7: "name string",
        8: "fieldSelector FieldSelectorAttributes",
        9: "labelSelector LabelSelectorAttributes",
    },
    "FieldSelectorAttributes": {
        1: "rawSelector string",
        2: "requirements []FieldSelectorRequirement",
    },
    "LabelSelectorAttributes": {
        1: "rawSelector string",
        2: "requirements []LabelSelectorRequirement",
    },
    "NonResourceAttributes": {1: "path string", 2: "verb string"},
    "SubjectAccessReviewStatus": {
        1: "allowed *bool",
        4: "denied bool",
        2: "reason string",
        3: "evaluationError string",
    },
    "SelfSubjectRulesReview": {
        1: "metadata ObjectMeta",
        2: "spec SelfSubjectRulesReviewSpec",
        3: "status SubjectRulesReviewStatus",
    },
    "SelfSubjectRulesReviewSpec": {1: "namespace string"},
    "SubjectRulesReviewStatus": {
        1: "resourceRules []ResourceRule",
        2: "nonResourceRules []NonResourceRule",
        3: "incomplete *bool",
        4: "evaluationError string",
    },
    "ResourceRule": {
        1: "verbs []string",
        2: "apiGroups []string",
        3: "resources []string",
        4: "resourceNames []string",
    },
    "NonResourceRule": {1: "verbs []string", 2: "nonResourceURLs []string"},
    # authentication.k8s.io
    "TokenRequest": {
        1: "metadata ObjectMeta",
        2: "spec TokenRequestSpec",
        3: "status TokenRequestStatus",
    },
    "TokenRequestSpec": {
        1: "audiences []string",
        4: "expirationSeconds *int",
        3: "boundObjectRef BoundObjectReference",
    },
    "BoundObjectReference": {
        1: "kind string",
        2: "apiVersion string",
        3: "name string",
        4: "uid string",
    },
    "TokenRequestStatus": {1: "token *string", 2: "expirationTimestamp Time"},
    "TokenReview": {
        1: "metadata ObjectMeta",
        2: "spec TokenReviewSpec",
        3: "status TokenReviewStatus",
    },
    "TokenReviewSpec": {1: "token string", 2: "audiences []string"},
    "TokenReviewStatus": {
        1: "authenticated bool",
        2: "user UserInfo",
        4: "audiences []string",
        3: "error string",
    },
    "SelfSubjectReview": {1: "metadata ObjectMeta", 2: "status SelfSubjectReviewStatus"},
    "SelfSubjectReviewStatus": {1: "userInfo UserInfo"},
    "UserInfo": {
        1: "username string",
        2: "uid string",
        3: "groups []string",
        4: "extra {}ExtraValue",
    },
    "ExtraValue": {1: "items []string"},
}

# ExtraValue is a list of strings in JSON, wrapped in a message for protobuf.
FORMS = {"ExtraValue": lambda fields: fields.get("items", [])}

KINDS = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    # `kubectl auth whoami` falls back to the beta version of the same message
    ("authentication.k8s.io/v1beta1", "SelfSubjectReview"): "SelfSubjectReview",
}
