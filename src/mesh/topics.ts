/** The gossipsub topics of one fleet network. */
export interface MeshTopics {
  directives: string;
  status: string;
  adverts: string;
  registry: string;
}

/**
 * Topics `loam/<network>/{directives,status,adverts,registry}/1`: two fleets on one LAN never
 * mix.
 */
export function meshTopics(network: string): MeshTopics {
  return {
    directives: `loam/${network}/directives/1`,
    status: `loam/${network}/status/1`,
    adverts: `loam/${network}/adverts/1`,
    registry: `loam/${network}/registry/1`,
  };
}
