/** The API group and version of Troupe's custom resources, as crds/ defines them. */
export const GROUP = 'troupe.dev';
export const VERSION = 'v1alpha1';
/** `troupe.dev/v1alpha1`, the apiVersion of every Troupe object. */
export const API_VERSION = `${GROUP}/${VERSION}`;
