//! XenAPI client: XML-RPC calls and the HTTP `PUT /import` that streams an XVA into a host.
