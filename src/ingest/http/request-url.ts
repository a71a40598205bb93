/**
 * The path and query of a request target. Node passes the target as the client sent
 * it, and some (`//`, `http://[`) are no URL at all: those answer 400, not 500.
 */
export function requestUrl(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}
